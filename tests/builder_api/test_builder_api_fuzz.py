"""CI fuzzes builder-api against its own OpenAPI document with schemathesis: no 5xx, no hang."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from testbed.builder_api import serving, wait_for
from testbed.processes import command, free_port, launcher_env


def test_schemathesis_finds_no_server_error(project: Path, user_home: Path) -> None:
    port = free_port()
    config = user_home / "api" / "builder-api.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f"""
[project.app]
root = "{project}"
port = {port}
password = "pw"
[project.app.jobs.echo]
command = "echo"
args = ["{{word}}"]
placeholders.word = {{ regex = "[a-z]+" }}
[project.app.logs]
app = "app.log"
[project.app.events]
path = "events.jsonl"
[project.app.runtime]
enabled = true
start_command = "sleep 30"
""")
    server = subprocess.Popen(command("llm-docker", "api", "--project", "app", "--config", str(config)),
                              cwd=project, env=launcher_env(user_home), stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: serving(port))
        schemathesis = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
        result = subprocess.run(
            [schemathesis, "run", f"http://127.0.0.1:{port}/openapi.json", "-H", "X-Builder-API-Password: pw",
             "--checks", "not_a_server_error", "-n", "40", "--request-timeout", "70", "--no-color"],
            capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-6000:]
        assert "passed" in result.stdout and "Server error" not in result.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0

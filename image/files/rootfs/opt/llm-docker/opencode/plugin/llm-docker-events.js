// llm-docker: tell the supervisor which OpenCode session this container uses (the slot
// system reads $LLM_DOCKER_EVENTS; without it, it falls back to reading opencode.db).
// One line per change of session: when one is created, and when a message lands in another
// (a resumed session, or a switch inside the TUI). Never throws into OpenCode.
import { appendFileSync } from "node:fs";

export const LlmDockerSessionEvents = async () => {
  const file = process.env.LLM_DOCKER_EVENTS;
  let last = "";
  const record = (id, source) => {
    if (!file || !id || id === last) return;
    last = id;
    try {
      appendFileSync(file, JSON.stringify({ tool: "opencode", session_id: id, source }) + "\n");
    } catch {}
  };
  return {
    event: async ({ event }) => {
      const props = event?.properties ?? {};
      if (event?.type === "session.created") record(props.info?.id, "created");
      else if (event?.type === "message.updated") record(props.info?.sessionID, "message");
    },
  };
};

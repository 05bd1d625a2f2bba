/* Test double for `claude` and `opencode`, linked statically into the busybox test image.
 *
 * It writes session state the way the real tools do, so the slot logic is exercised
 * against real files and a real SQLite database:
 *   claude:   appends to ~/.claude/projects/<cwd with non-alnum -> '-'>/<session>.jsonl
 *   opencode: inserts/updates a row of table `session` in ~/.local/share/opencode/opencode.db
 * and, like llm-docker's hooks/plugins, appends {"session_id": ...} to $LLM_DOCKER_EVENTS.
 *
 * Output (one line each): ARG:<arg> for every argument, SESSION:<id>, READY.
 * Then: with -p/--print (claude) or `run` (opencode) it prints ANSWER:<session> and exits;
 * otherwise it echoes stdin lines as ECHO:<line> until EOF or a line "exit"; the line "slot?"
 * also prints SLOT:<$LLM_DOCKER_SLOT>.
 * Test-only flags (passed after `--` by the tests):
 *   --fake-exit N     exit code                --fake-sleep S   sleep S seconds before exiting
 *   --fake-clear      switch to a new session after starting (like /clear)
 *   --fake-no-hooks   do not write $LLM_DOCKER_EVENTS
 *   --fake-sh CMD     the hostile agent: run `/bin/sh -c CMD` after writing the session
 *                     (and its event), print SH:<exit status>, then carry on as usual
 * If ./.llm-docker-probe.sh exists, it prints the ARG lines and execs `sh` on it instead.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int hooks = 1;

static long long now_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void random_hex(char *out, int n) {
    unsigned char buf[32];
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof buf) != sizeof buf) { perror("urandom"); exit(97); }
    close(fd);
    for (int i = 0; i < n; i++) sprintf(out + i, "%x", buf[i] & 15);
    out[n] = 0;
}

static void new_uuid(char *out) {
    char h[33];
    random_hex(h, 32);
    sprintf(out, "%.8s-%.4s-4%.3s-8%.3s-%.12s", h, h + 8, h + 13, h + 17, h + 20);
}

static void mkdirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') { *p = 0; mkdir(tmp, 0700); *p = '/'; }
    }
    mkdir(tmp, 0700);
}

static void hook(const char *tool, const char *session) {
    const char *events = getenv("LLM_DOCKER_EVENTS");
    if (!hooks || !events || !*events) return;
    FILE *f = fopen(events, "a");
    if (!f) { perror(events); return; }
    fprintf(f, "{\"tool\": \"%s\", \"session_id\": \"%s\"}\n", tool, session);
    fclose(f);
}

static void claude_dir(char *out, size_t size) {
    char cwd[2048];
    if (!getcwd(cwd, sizeof cwd)) { perror("getcwd"); exit(97); }
    for (char *p = cwd; *p; p++) if (!isalnum((unsigned char)*p)) *p = '-';
    snprintf(out, size, "%s/.claude/projects/%s", getenv("HOME"), cwd);
}

static void claude_write(const char *session) {
    char dir[4096], path[4200], cwd[2048];
    claude_dir(dir, sizeof dir);
    mkdirs(dir);
    snprintf(path, sizeof path, "%s/%s.jsonl", dir, session);
    FILE *f = fopen(path, "a");
    if (!f) { perror(path); exit(97); }
    fprintf(f, "{\"type\": \"user\", \"sessionId\": \"%s\", \"cwd\": \"%s\"}\n", session,
            getcwd(cwd, sizeof cwd) ? cwd : "?");
    fclose(f);
    hook("claude", session);
}

static sqlite3 *opencode_db(void) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/.local/share/opencode", getenv("HOME"));
    mkdirs(dir);
    snprintf(path, sizeof path, "%s/opencode.db", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) { fprintf(stderr, "db: %s\n", sqlite3_errmsg(db)); exit(97); }
    sqlite3_busy_timeout(db, 10000);
    char *err = NULL;
    /* Two fresh containers may create the DB at the same moment: switching to WAL can
     * return SQLITE_BUSY without consulting the busy handler, so retry for up to 10 s. */
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS session ("
                                  "id TEXT PRIMARY KEY, directory TEXT NOT NULL, title TEXT NOT NULL,"
                                  "time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL)",
                              NULL, NULL, &err);
        if (rc == SQLITE_OK) break;
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || attempt >= 200) {
            fprintf(stderr, "db: %s\n", err); exit(97);
        }
        sqlite3_free(err);
        err = NULL;
        usleep(50000);
    }
    return db;
}

static void opencode_write(const char *session) {
    sqlite3 *db = opencode_db();
    sqlite3_stmt *st;
    char cwd[2048];
    if (!getcwd(cwd, sizeof cwd)) exit(97);
    long long t = now_ms();
    sqlite3_prepare_v2(db, "INSERT INTO session(id, directory, title, time_created, time_updated) "
                           "VALUES(?1, ?2, 'fake', ?3, ?3) ON CONFLICT(id) DO UPDATE SET time_updated=?3",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cwd, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, t);
    if (sqlite3_step(st) != SQLITE_DONE) { fprintf(stderr, "db: %s\n", sqlite3_errmsg(db)); exit(97); }
    sqlite3_finalize(st);
    sqlite3_close(db);
    hook("opencode", session);
}

static int opencode_latest(char *out) {
    sqlite3 *db = opencode_db();
    sqlite3_stmt *st;
    char cwd[2048];
    if (!getcwd(cwd, sizeof cwd)) exit(97);
    sqlite3_prepare_v2(db, "SELECT id FROM session WHERE directory=?1 ORDER BY time_updated DESC LIMIT 1", -1, &st, NULL);
    sqlite3_bind_text(st, 1, cwd, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found) snprintf(out, 128, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return found;
}

static int claude_latest(char *out) {
    /* newest .jsonl by mtime in this cwd's folder (what `claude --continue` picks) */
    char dir[4096];
    claude_dir(dir, sizeof dir);
    char command[4300];
    snprintf(command, sizeof command, "ls -t '%s' 2>/dev/null | grep '\\.jsonl$' | head -n 1", dir);
    FILE *p = popen(command, "r");
    if (!p) return 0;
    int found = fgets(out, 128, p) != NULL;
    pclose(p);
    if (found) { char *dot = strstr(out, ".jsonl"); if (dot) *dot = 0; }
    return found && *out;
}

int main(int argc, char **argv) {
    const char *tool = basename(argv[0]);
    int is_claude = strcmp(tool, "opencode") != 0;
    for (int i = 1; i < argc; i++) printf("ARG:%s\n", argv[i]);
    fflush(stdout);
    if (access("./.llm-docker-probe.sh", R_OK) == 0) {
        execl("/bin/sh", "sh", "./.llm-docker-probe.sh", (char *)NULL);
        perror("exec");
        return 96;
    }
    char session[128] = "";
    int print_mode = 0, exit_code = 0, clear = 0, sleep_s = 0, cont = 0;
    const char *shell = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (next && (!strcmp(a, "--session-id") || !strcmp(a, "--resume") || !strcmp(a, "--session") || !strcmp(a, "-s")))
            snprintf(session, sizeof session, "%s", argv[++i]);
        else if (!strcmp(a, "--continue") || !strcmp(a, "-c")) cont = 1;
        else if (!strcmp(a, "-p") || !strcmp(a, "--print") || (!is_claude && !strcmp(a, "run"))) print_mode = 1;
        else if (next && !strcmp(a, "--fake-exit")) exit_code = atoi(argv[++i]);
        else if (next && !strcmp(a, "--fake-sleep")) sleep_s = atoi(argv[++i]);
        else if (!strcmp(a, "--fake-clear")) clear = 1;
        else if (!strcmp(a, "--fake-no-hooks")) hooks = 0;
        else if (next && !strcmp(a, "--fake-sh")) shell = argv[++i];
    }
    if (!*session && cont) {
        if (!(is_claude ? claude_latest(session) : opencode_latest(session))) session[0] = 0;
    }
    if (!*session) {
        if (is_claude) new_uuid(session);
        else { char h[17]; random_hex(h, 16); snprintf(session, sizeof session, "ses_%s", h); }
    }
    if (is_claude) claude_write(session); else opencode_write(session);
    if (clear) {
        usleep(20000);
        if (is_claude) new_uuid(session);
        else { char h[17]; random_hex(h, 16); snprintf(session, sizeof session, "ses_%s", h); }
        if (is_claude) claude_write(session); else opencode_write(session);
    }
    if (shell) {
        fflush(stdout);
        int status = system(shell);
        printf("SH:%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    printf("SESSION:%s\nREADY\n", session);
    fflush(stdout);
    if (sleep_s) sleep(sleep_s);
    if (print_mode) {
        printf("ANSWER:%s\n", session);
        fflush(stdout);
        return exit_code;
    }
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strcmp(line, "exit")) break;
        if (!strcmp(line, "slot?")) {  /* which container answers: for window/attach tests */
            const char *slot = getenv("LLM_DOCKER_SLOT");
            printf("SLOT:%s\n", slot ? slot : "none");
        }
        printf("ECHO:%s\n", line);
        fflush(stdout);
        if (is_claude) claude_write(session); else opencode_write(session);
    }
    return exit_code;
}

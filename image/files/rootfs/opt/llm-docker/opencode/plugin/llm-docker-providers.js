// llm-docker: OpenCode's Anthropic provider follows the same variables as Claude Code.
//
// Claude Code takes ANTHROPIC_BASE_URL without the API version (it calls <url>/v1/messages);
// OpenCode's Anthropic SDK reads the same variable but expects the version in it (it calls
// <url>/messages), so with a proxy or a custom endpoint set for Claude, OpenCode got
// "Not Found". This plugin's `config` hook sees the configuration after OpenCode merged every
// source (global, OPENCODE_CONFIG, the project's, OPENCODE_CONFIG_CONTENT) and fills in
// provider.anthropic.options.baseURL = ANTHROPIC_BASE_URL + "/v1" ONLY when nobody set it:
// a user's explicit setting always wins. (OPENCODE_CONFIG_CONTENT from the launcher would not
// do: OpenCode merges it over the user's files.) ANTHROPIC_API_KEY needs nothing: the SDK reads
// it. OPENAI_BASE_URL needs nothing either: by OpenAI's convention it already ends in /v1.
// Never throws into OpenCode. Only the plugin is exported: OpenCode calls every export.

const anthropicBaseURL = (url) => {
  const base = (url ?? "").trim().replace(/\/+$/, "");
  if (!base) return undefined;
  return /\/v1$/.test(base) ? base : `${base}/v1`;
};

export const LlmDockerProviderDefaults = async () => ({
  config: async (config) => {
    try {
      const baseURL = anthropicBaseURL(process.env.ANTHROPIC_BASE_URL);
      if (!baseURL || !config) return;
      const provider = (config.provider ??= {});
      const anthropic = (provider.anthropic ??= {});
      const options = (anthropic.options ??= {});
      if (options.baseURL === undefined) options.baseURL = baseURL;
    } catch {}
  },
});

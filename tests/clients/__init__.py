"""End-to-end tests of the real clients (Claude Code, Codex CLI, Gemini CLI, the Node SDKs)
against scripted fake upstreams, and the support code they share."""

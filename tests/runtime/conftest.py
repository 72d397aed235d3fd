"""The real Claude Code CLI and the scripted Messages-API server, for the end-to-end tests."""

from tests.fakes.claude_cli import claude_cli, messages_server

__all__ = ["claude_cli", "messages_server"]

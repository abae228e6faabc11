"""Commands: `soul mcp` (MCP over stdio) and `soul serve` (Streamable HTTP, /events, /health).

Both take the soul and instance from the global `--home` / `--instance` options: MCP clients and
service managers start them with a minimal environment, so nothing may depend on exported variables.
"""

from __future__ import annotations

from pathlib import Path

import typer

from soul.cli.app import app, err, home_arg, instance_arg


@app.command()
def mcp() -> None:
    """Serve the soul to an MCP client over stdio (Claude Code, Claude Desktop, Cursor...).

    Give --home and --instance explicitly in the client's config: clients start servers with a
    minimal environment."""
    from soul.mcp_server import run_stdio

    run_stdio(home_arg(), instance_arg())


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs a token."),
    port: int = typer.Option(8765, "--port", help="TCP port.", min=0, max=65535),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="Bearer token file, mode 0600 (default: .soul/server.token if it exists)."
    ),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="A Host header value to accept besides loopback names (repeatable)."
    ),
    allow_origin: list[str] = typer.Option(
        [], "--allow-origin", help="A browser Origin to accept besides loopback ones (repeatable)."
    ),
    init_token: bool = typer.Option(
        False, "--init-token", help="Create the token file (mode 0600) if it does not exist, then exit."
    ),
) -> None:
    """Serve the soul over Streamable HTTP at /mcp, with /events (SSE) and /health."""
    from soul import http_server
    from soul.cli.app import open_soul

    soul = open_soul()
    path = token_file or http_server.default_token_path(soul.home)
    if init_token:
        created = http_server.init_token(path)
        err(f"{'created' if created else 'kept existing'} token file {path} (mode 0600); copy it to each client")
        return
    options = http_server.ServeOptions(
        host=host,
        port=port,
        token_file=path if token_file or path.exists() else None,
        allow_hosts=allow_host,
        allow_origins=allow_origin,
    )
    http_server.serve(soul.home, soul.instance, options)

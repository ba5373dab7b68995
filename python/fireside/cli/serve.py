"""``fireside serve [MODEL]``: the OpenAI-compatible server on uvicorn."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from fireside.cli.common import RpcOption, load_model
from fireside.cli.errors import CLIError
from fireside.cli.listen import listen
from fireside.cli.reply_options import check_chat_template
from fireside.cli.sources import collection_names
from fireside.netaddr import is_loopback


def _entries(flag: str, value: str | None, normalize: Callable[[str], str]) -> list[str]:
    """A comma-separated flag's entries in canonical form, or a CLIError naming the bad one."""
    entries = []
    for entry in (value or "").split(","):
        if entry.strip():
            try:
                entries.append(normalize(entry))
            except ValueError as e:
                raise CLIError(f"{flag}: {e}") from e
    return entries


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _duration(value: str) -> float:
    from fireside.server.ollama_protocol import keep_alive_seconds

    try:
        seconds = keep_alive_seconds(value)
    except ValueError as e:
        raise CLIError(f"--keep-alive: {e}") from e
    assert seconds is not None
    return seconds


def _downloaded(name: str) -> str:
    """``name``, once its file is on disk (downloaded first, with a progress bar)."""
    from fireside.model_path import resolve_model_path

    resolve_model_path(name)
    return name


def serve(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="MODEL",
            help="Models to load now (names or .gguf paths); every downloaded model is "
            "served too, loaded on its first request.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on.")
    ] = 8080,
    parallel: Annotated[
        int, typer.Option("--parallel", "-np", min=1, help="Requests generated at the same time.")
    ] = 4,
    ctx_size: Annotated[
        int | None,
        typer.Option(
            "--ctx-size",
            "-c",
            min=64,
            help="Context of each request (prompt plus reply) in tokens.",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="FIRESIDE_API_KEY",
            help="Require 'Authorization: Bearer KEY' (also FIRESIDE_API_KEY).",
        ),
    ] = None,
    max_queue: Annotated[
        int,
        typer.Option(
            "--max-queue", min=0, help="Requests that may wait for a free slot (then HTTP 503)."
        ),
    ] = 64,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="CPU threads (default: auto, <= physical cores)."),
    ] = None,
    chat_template: Annotated[
        str | None,
        typer.Option(
            "--chat-template",
            help="A Jinja template, built-in template name or .jinja file overriding the model's.",
        ),
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            "--allowed-hosts",
            metavar="H1,H2",
            envvar="FIRESIDE_ALLOWED_HOSTS",
            help="More Host names to answer to, comma-separated ('.example.org': it and its "
            "subdomains; '*': any). Loopback names, the bound address and this machine's "
            "name always work.",
        ),
    ] = None,
    allowed_origins: Annotated[
        str | None,
        typer.Option(
            "--allowed-origins",
            metavar="O1,O2",
            envvar="FIRESIDE_ALLOWED_ORIGINS",
            help="Web pages that may call the API, comma-separated scheme://host[:port] "
            "(':*': any port; 'null'; '*': any). The chat page always may.",
        ),
    ] = None,
    max_models: Annotated[
        int,
        typer.Option(
            "--max-models",
            min=1,
            help="Models in memory at once; the least recently used idle one makes room.",
        ),
    ] = 3,
    memory_budget: Annotated[
        str | None,
        typer.Option(
            "--memory-budget",
            metavar="SIZE",
            help="Memory loaded models may take together, e.g. 8G (default: free RAM).",
        ),
    ] = None,
    keep_alive: Annotated[
        str,
        typer.Option(
            "--keep-alive",
            metavar="DURATION",
            help="How long an idle model stays loaded: 30s, 5m, 1h, 0 (unload after each "
            "reply), -1 (forever).",
        ),
    ] = "5m",
    rpc: RpcOption = None,
    docs: Annotated[
        list[str] | None,
        typer.Option(
            "--docs",
            metavar="NAME[,NAME]",
            help="LocalDocs collections requests may search and answer from (/v1/docs, "
            '"docs" in chat completions). Nothing is ever indexed over HTTP.',
        ),
    ] = None,
    speculative: Annotated[
        bool,
        typer.Option(
            "--speculative/--no-speculative",
            help="Draft tokens ahead by prompt lookup when it pays (the output is the same).",
        ),
    ] = True,
    prompt_cache: Annotated[
        str | None,
        typer.Option(
            "--prompt-cache",
            metavar="DIR",
            help="Keep the KV cache of long prompt prefixes (system prompts, documents, "
            "conversations) in DIR, so a restarted server need not evaluate them again.",
        ),
    ] = None,
    prompt_cache_size: Annotated[
        str,
        typer.Option(
            "--prompt-cache-size",
            metavar="SIZE",
            help="The bound on --prompt-cache's size, e.g. 2G; least recently used first.",
        ),
    ] = "4GiB",
) -> None:
    """Serve models over OpenAI's HTTP API (/v1) and Ollama's (/api), with a chat page at /.

    Every downloaded model is served by name and loaded on its first request; the
    models named here are loaded at start.

    Other web pages may use it only when --allowed-origins names them, and it answers only
    to its own Host names (so a page cannot reach it by DNS rebinding).
    """
    import uvicorn

    from fireside.cli.settings import settings
    from fireside.server import ServerConfig, create_app
    from fireside.server.http11 import uvicorn_config
    from fireside.server.model_manager import parse_size
    from fireside.server.origins import normalize_allowed_host, normalize_allowed_origin

    hosts = _entries("--allowed-hosts", allowed_hosts, normalize_allowed_host)
    origins = _entries("--allowed-origins", allowed_origins, normalize_allowed_origin)
    if host and not _is_address(host):
        try:  # --host mybox.lan: answer to that name (a bad one fails to bind below)
            hosts.append(normalize_allowed_host(host))
        except ValueError:
            pass

    if not is_loopback(host) and api_key is None:
        print(
            f"warning: listening on {host} without --api-key: anyone who can reach this "
            "machine can use the model (downloading and deleting models over /api/pull and "
            "/api/delete is off)",
            file=sys.stderr,
        )
    if "*" in origins and api_key is None:
        print(
            "warning: --allowed-origins '*' without --api-key: any web page you open can use "
            "the model",
            file=sys.stderr,
        )
    seconds = _duration(keep_alive)
    check_chat_template(chat_template)  # a typo fails before binding and loading
    budget = None
    if memory_budget is not None:
        try:
            budget = parse_size(memory_budget)
        except ValueError as e:
            raise CLIError(f"--memory-budget: {e}") from e
    try:
        cache_size = parse_size(prompt_cache_size)
    except ValueError as e:
        raise CLIError(f"--prompt-cache-size: {e}") from e
    if prompt_cache is not None:
        from fireside.generation.prompt_cache import PromptCache

        try:  # before binding and loading: an unusable directory fails at once
            PromptCache(prompt_cache, cache_size).close()
        except ValueError as e:
            raise CLIError(f"--prompt-cache: {e}") from e
    served = collection_names(docs)
    if served:
        from fireside.docs import list_collections

        known = list_collections()
        for wanted in served:
            if wanted not in known:  # before binding and loading: a typo fails at once
                raise CLIError(
                    f"--docs: no collection named {wanted!r} (create it with `fireside docs add`)"
                )
    sock = listen(host, port)
    try:
        given: list[Any] = []
        for name in models or []:  # downloaded (with a bar) if needed, before serving
            if rpc:  # RPC workers are set when loading: these stay loaded while serving
                given.append(
                    load_model(
                        name,
                        embedding=True,
                        n_threads=threads,
                        chat_template=chat_template,
                        rpc_servers=rpc,
                    )
                )
            else:
                given.append(_downloaded(name))
        try:
            config = ServerConfig(
                parallel=parallel,
                ctx_size=ctx_size,
                api_key=api_key,
                max_queue=max_queue,
                n_threads=threads,
                allowed_hosts=tuple(hosts),
                allowed_origins=tuple(origins),
                docs=tuple(served),
                manage_models=is_loopback(host) or api_key is not None,
                max_models=max_models,
                memory_budget=budget,
                keep_alive=seconds,
                chat_template=chat_template,
                speculative=speculative,
                prompt_cache=prompt_cache,
                prompt_cache_size=cache_size,
            )
            app = create_app(given, config)
            loaded = app.state.models.services()
            bound = sock.getsockname()
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            what = ",".join(s.model_id for s in loaded) or "every downloaded model"
            slots = (
                f"{parallel} slots of {loaded[0].engine.n_ctx_seq} tokens"
                if loaded
                else f"up to {max_models} models of {parallel} slots"
            )
            print(
                f"fireside: serving {what} at http://{shown}:{bound[1]} ({slots}); Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            server = uvicorn.Server(
                uvicorn_config(
                    app,
                    log_level="info" if settings.verbose else "warning",
                    access_log=settings.verbose,
                    timeout_graceful_shutdown=5,
                )
            )
            try:
                server.run(sockets=[sock])
            except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after a clean shutdown
                pass
        finally:
            for model in given:
                if not isinstance(model, str):
                    model.close()
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)

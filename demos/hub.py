"""The demo hub: every registered app's demo as a tab, after an overview tab."""

from __future__ import annotations

import gradio as gr

from tessera import __version__
from tessera.apps.registry import get_app, list_apps

# Uploads larger than this are refused by the server before any app code sees them.
MAX_UPLOAD = "50mb"
CONCURRENCY = 2

OVERVIEW = f"""
# Tessera {__version__}

Attention-based task models built on one library of attention blocks with Triton kernels.
Each tab runs one task app on its small demo checkpoint, trained on a synthetic world
generated in that task's real data format. Everything runs on the CPU.
"""


def _overview_markdown() -> str:
    apps = list_apps()
    if not apps:
        return OVERVIEW + "\n_No task apps are registered yet._\n"
    rows = "\n".join(f"| {a.title} | {a.summary} |" for a in apps)
    return OVERVIEW + "\n| task | what it does |\n|---|---|\n" + rows + "\n"


def build_hub(task: str | None = None) -> gr.Blocks:
    """The hub, or with ``task`` a single app's demo."""
    if task is not None:
        builder = get_app(task).demo_builder()
        if builder is None:
            raise KeyError(f"the {task!r} app has no demo")
        return builder()

    # Build each app's Blocks before entering the hub: a Blocks created inside another's
    # context is rendered there at once, and rendering it again in its tab would show it twice.
    demos = [(app.title, builder()) for app in list_apps() if (builder := app.demo_builder())]
    with gr.Blocks(title="Tessera") as hub:
        with gr.Tab("Overview"):
            gr.Markdown(_overview_markdown(), elem_id="tessera-overview")
        for title, demo in demos:
            with gr.Tab(title):
                demo.render()
    return hub


def launch(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    **kwargs,
):
    """Queue and serve ``demo``; binds to loopback unless told otherwise."""
    print(f"Tessera demo on http://{host}:{port}", flush=True)
    return demo.queue(default_concurrency_limit=CONCURRENCY).launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_UPLOAD,
        footer_links=["gradio", "settings"],
        **kwargs,
    )

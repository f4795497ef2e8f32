"""A stand-in app for testing the registry, CLI and hub without a real model."""

CALLS: list[list[str]] = []


def main(argv: list[str]) -> int:
    CALLS.append(argv)
    return 0


def build_demo():
    import gradio as gr

    with gr.Blocks() as demo:
        gr.Markdown("fake app demo", elem_id="fake-app")
    return demo


TRAINED: list[str] = []


def train_checkpoints() -> None:
    TRAINED.append("toy-tiny")

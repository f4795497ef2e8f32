"""Gradio demos: one ``gr.Blocks`` per task, mounted as tabs by :mod:`tessera.demos.hub`."""

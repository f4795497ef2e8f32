"""Pieces every task app uses: CLI scaffold, prediction writer, checkpoint registry."""

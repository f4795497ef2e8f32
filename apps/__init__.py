"""Task apps: one package per task (model, LightningModule, metrics, CLI, prediction writer)."""

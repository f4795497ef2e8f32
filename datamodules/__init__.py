"""Per-task data: format readers/writers, datasets, LightningDataModules, synthetic worlds."""

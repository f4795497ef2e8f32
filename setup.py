"""Maps the top-level folders into the ``tessera.*`` namespace.

pyproject.toml holds all metadata; this file only computes the package list, because each
folder (``kernels/`` -> ``tessera.kernels``) may grow sub-packages that setuptools cannot
discover from a static ``package-dir`` table.
"""

from setuptools import find_packages, setup

PACKAGE_DIRS = {
    "tessera": "tessera",
    "tessera.kernels": "kernels",
    "tessera.shared_blocks": "shared_blocks",
    "tessera.datamodules": "datamodules",
    "tessera.apps": "apps",
    "tessera.demos": "demos",
    "tessera.checkpoints": "checkpoints",
}


def _packages() -> list[str]:
    packages = []
    for name, folder in PACKAGE_DIRS.items():
        packages.append(name)
        packages += [f"{name}.{sub}" for sub in find_packages(folder)]
    return packages


setup(
    packages=_packages(),
    package_dir=PACKAGE_DIRS,
    package_data={"": ["*.yaml", "*.json", "*.md", "*.safetensors", "examples/**/*"]},
    include_package_data=True,
)

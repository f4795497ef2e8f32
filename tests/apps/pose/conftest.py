"""Pose app tests run single-threaded (2 shared cores) on the real-layout fixtures."""

import pytest
import torch

from helpers.layouts import pose as layouts


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def coco_root(tmp_path_factory):
    return layouts.write_coco(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="session")
def h36m_root(tmp_path_factory):
    # Only VideoPose3D's npz files: the cameras are recovered from the gt 2-D on first use.
    return layouts.write_h36m(tmp_path_factory.mktemp("h36m"), cameras_json=False)

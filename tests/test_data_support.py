"""The data tests fail, not skip, in CI when the data extra is missing."""

import pytest

from tests.data_support import require_data_packages

MISSING = {"newllm_no_such_module_xyz": "no-such-dist"}


def test_missing_package_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(ImportError, match="no-such-dist.*CI is set"):
        require_data_packages(MISSING)


def test_missing_package_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-dist"):
        require_data_packages(MISSING)


def test_installed_packages_pass(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require_data_packages({"json": "json"})


def test_import_newllm_data_does_not_import_the_extra():
    import subprocess
    import sys

    code = "import sys, newllm, newllm.data, newllm.cli.main; print('datasets' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]

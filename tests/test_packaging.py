"""What `pip install` ships: every package of the tree; the recipes as `s2s_keras.pipelines`;
the LSTM kernels' sources."""

import os
import tomllib

from conftest import REPO


def test_every_package_of_the_tree_is_listed_for_setuptools():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)
    setuptools = project["tool"]["setuptools"]
    # The command's module sits beside the package: its help must not import Keras.
    assert setuptools["py-modules"] == ["s2s_keras_cli"]
    assert project["project"]["scripts"] == {"s2s": "s2s_keras_cli:main"}
    found = {"s2s_keras.pipelines"}  # the top-level folder pipelines/, mapped by package-dir
    for directory, _, files in os.walk(os.path.join(REPO, "s2s_keras")):
        if "__init__.py" in files:
            found.add(os.path.relpath(directory, REPO).replace(os.sep, "."))
    assert sorted(setuptools["packages"]) == sorted(found)
    assert setuptools["package-dir"] == {"s2s_keras.pipelines": "pipelines"}


def test_the_recipes_import_under_the_package():
    import s2s_keras.pipelines as pipelines

    assert os.path.dirname(pipelines.__file__) == os.path.join(REPO, "pipelines")
    assert callable(pipelines.load_corpus)


def test_the_kernel_sources_ship_for_the_build_after_install():
    """`lstm_kernels.build` compiles from the installed package: every source and header."""
    from s2s_keras.layers import lstm_kernels

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as handle:
        shipped = set(tomllib.load(handle)["tool"]["setuptools"]["package-data"]["s2s_keras"])
    layers = os.path.join(REPO, "s2s_keras", "layers")
    sources = [
        lstm_kernels.SOURCE,
        lstm_kernels.SEQUENCE_SOURCE,
        lstm_kernels.FLOAT_SEQUENCE_SOURCE,
        *lstm_kernels.HEADERS,
    ]
    on_disk = {name for name in os.listdir(layers) if name.endswith((".cc", ".h"))}
    assert {os.path.basename(path) for path in sources} == on_disk
    assert {"layers/" + name for name in on_disk} <= shipped

"""Packages: src/ holds the code; the Hydra configs sit at the repository's top (conf/) and
ship inside the package as `metalearn.conf`, so an installed wheel finds them from any folder."""
from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages("src", include=["metalearn*", "hydra_plugins*"]), "metalearn.conf"],
    package_dir={"": "src", "metalearn.conf": "conf"},
)

"""The package list, derived from the folders: engine/, tui/ and profiles/ install as tunedeck.engine,
tunedeck.tui and tunedeck.profiles (names as generic as `engine` and `tui` would collide with other
packages in a user's environment), each with every subpackage found below it. Everything else is in
pyproject.toml; tests/test_packaging.py builds a wheel and checks it holds every module and data file."""

from setuptools import find_packages, setup

FOLDERS = {"tunedeck.engine": "engine", "tunedeck.tui": "tui", "tunedeck.profiles": "profiles"}

packages, package_dir = [], {}
for name, folder in FOLDERS.items():
    package_dir[name] = folder
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)

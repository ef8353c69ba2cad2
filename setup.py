"""The one packaging rule pyproject.toml cannot state: the templates stay at the top of the
repository (``templates/email/``, ``templates/web/``, where the user keeps them), and the wheel
carries them inside the package as ``newsletter/templates/``, where ``newsletter.resources``
looks first. Everything else about the package is declared in pyproject.toml.

Folders of data (migrations, static files, templates, catalogues) are listed as namespace
packages, so setuptools ships their files as package data instead of warning about them.
An editable install (``pip install -e .``) leaves the templates where they are:
``newsletter.resources`` then finds the top-level folder next to the package.
"""

from setuptools import find_namespace_packages, setup

NOT_PACKAGES = ["*.__pycache__"]

setup(
    packages=[
        *find_namespace_packages(
            include=["newsletter", "newsletter.*", "subscribers", "subscribers.*"],
            exclude=NOT_PACKAGES,
        ),
        "newsletter.templates",
        *(
            f"newsletter.templates.{name}"
            for name in find_namespace_packages(where="templates", exclude=NOT_PACKAGES)
        ),
    ],
    package_dir={"newsletter.templates": "templates"},
)

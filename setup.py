"""Only the optional compiled part; everything else is in pyproject.toml.

``mailwarden.logs._pfscan`` makes `mailwarden logs index` several times faster on Postfix
logs. It is optional: without a C compiler the install still succeeds and the index is built
by the pure-SQL path (columnar_postfix.py), which gives the same tables.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mailwarden.logs._pfscan",
            ["src/mailwarden/logs/_pfscan.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
        )
    ]
)

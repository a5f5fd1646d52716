"""The ``dualstack-ipam`` command line: click wiring in :mod:`.app` (the
shared options in :mod:`.options`), the commands in :mod:`.commands`,
:mod:`.show` and :mod:`.service_commands`, the demo in :mod:`.demo`, maps
and forecasts in :mod:`.maps`, manifests read in :mod:`.manifests`, tables
and JSON in :mod:`.render`, exit codes and error lines in
:mod:`.reporting`, the store a command works on in :mod:`.store`, and
``export``, ``import``, ``log`` and ``migrate`` in :mod:`.store_commands`,
``reconcile`` in :mod:`.reconcile_command` (the truth it reads in
:mod:`.truth`), ``reserve``, ``unreserve``, ``add-range`` and ``stats`` in
:mod:`.space_commands`, progress bars in :mod:`.progress`, YAML out in
:mod:`.yaml_text`.

Scripts import the commands from here: ``from dualstack_ipam.cli import main``.
"""

from dualstack_ipam.cli.app import (
    DEFAULT_CONFIG,
    DEFAULT_FLAGS,
    DEMO_NODES,
    DEMO_SEED,
    PROG,
    SEED_SERVICES,
    CLIError,
    Output,
    build_cli,
    exit_code_for,
    format_table,
    main,
    parse_manifests,
    run_add_range,
    run_allocate_node,
    run_allocate_service,
    run_demo,
    run_export,
    run_import,
    run_init,
    run_log,
    run_migrate,
    run_plan,
    run_reconcile,
    run_release_node,
    run_release_service,
    run_reserve,
    run_show,
    run_stats,
    run_unreserve,
)

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_FLAGS",
    "DEMO_NODES",
    "DEMO_SEED",
    "PROG",
    "SEED_SERVICES",
    "CLIError",
    "Output",
    "build_cli",
    "exit_code_for",
    "format_table",
    "main",
    "parse_manifests",
    "run_add_range",
    "run_allocate_node",
    "run_allocate_service",
    "run_demo",
    "run_export",
    "run_import",
    "run_init",
    "run_log",
    "run_migrate",
    "run_plan",
    "run_reconcile",
    "run_release_node",
    "run_release_service",
    "run_reserve",
    "run_show",
    "run_stats",
    "run_unreserve",
]

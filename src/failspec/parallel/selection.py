"""The scenarios a behave command line selects, found the way behave finds them, and that
command line without its paths (each worker gets its own scenarios instead).

behave is asked through its own code (its configuration, its feature locations, its
parser), as failspec.preflight does, so a worker's share is exactly what behave would
have run: the same paths, tag expression and ``--name`` selection.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from behave.configuration import Configuration, setup_parser
from behave.runner import Runner
from behave.runner_util import parse_features

from failspec.parallel.split import REPLICATION_TAG, Item


@dataclass
class Selection:
    """What a command line selects: ``items`` (the scenarios behave would run, in its
    order), ``features`` (every feature file it was given, in its order) and ``options``
    (the command line without its paths and JUnit directory)."""

    items: list[Item]
    features: list[str]
    options: list[str]
    #: behave's ``-D`` settings (``userdata``), for failspec.harness.servers.settings.
    userdata: dict[str, str]


#: Options a worker is given its own value for (its reports go to a directory of its own).
OWN_OPTIONS = ("--junit-directory",)


def select(args: Sequence[str]) -> Selection:
    """The :class:`Selection` of behave's command line ``args``. Raises SystemExit (from
    argparse) or behave's errors for options or features behave would refuse: callers run
    failspec.preflight first, which says so in one line."""
    config = Configuration(command_args=list(args))
    runner = Runner(config)
    locations = [f for f in runner.feature_locations() if not config.exclude(f)]
    features = parse_features(locations, language=config.lang)
    items: list[Item] = []
    files: list[str] = []
    for feature in features:
        files.append(str(feature.location.filename))
        for scenario in feature.walk_scenarios():
            if scenario.should_run(config):
                group = REPLICATION_TAG if REPLICATION_TAG in scenario.effective_tags else None
                items.append(Item(str(scenario.location), group))
    userdata = {str(k): str(v) for k, v in dict(config.userdata).items()}
    return Selection(items, list(dict.fromkeys(files)), options_without_paths(args), userdata)


def options_without_paths(args: Sequence[str]) -> list[str]:
    """``args`` without behave's positional paths (``FILE``, ``FILE:LINE``, ``@FILE``) and
    without :data:`OWN_OPTIONS`, telling an option's value from a path by behave's own
    parser (which options take a value)."""
    parser = setup_parser()
    takes_value = {
        option
        for action in parser._actions  # argparse keeps them there; no public accessor
        for option in action.option_strings
        if action.nargs != 0 and not isinstance(action, argparse._StoreConstAction)
    }
    kept: list[str] = []
    position = 0
    arguments = list(args)
    while position < len(arguments):
        arg = arguments[position]
        position += 1
        if arg == "--":
            break  # the rest are paths
        if not arg.startswith("-") or arg == "-":
            continue  # a path
        name = arg.split("=", 1)[0]
        own = name in OWN_OPTIONS
        if name in takes_value and "=" not in arg and position < len(arguments):
            value = arguments[position]
            position += 1
            if not own:
                kept += [arg, value]
            continue
        if not own:
            kept.append(arg)
    return kept

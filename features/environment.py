"""behave hooks: a table of contents. The work is done in failspec.harness.hooks."""

from failspec.harness import hooks


def before_all(context):
    hooks.before_all(context)


def before_scenario(context, scenario):
    hooks.before_scenario(context, scenario)


def before_step(context, step):
    hooks.before_step(context, step)


def after_scenario(context, scenario):
    hooks.after_scenario(context, scenario)


def after_all(context):
    hooks.after_all(context)

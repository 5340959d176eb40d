"""`cardamage`: the command line of the car damage detection workflow.

    app.py             the application, the shared options, where each command runs, errors
    commands.py        on AWS or here (--local): executions, models, approve, reject, deploy; and config
    aws_commands.py    the AWS pipeline: definition (offline), upsert, start, wait, label
    local_commands.py  this machine: run, serve, predict, tensorboard, prepare-data
    data_commands.py   labels in: import-labels (offline)
    batch_commands.py  on AWS or here (--local): batch-predict
    review_commands.py here: review (the endpoint's hard cases, as a review batch)
    monitor_commands.py here: monitor (drift of the endpoint's captured photos and answers); AWS: coming
    report_commands.py on AWS or here (--local): report (a package's report page)
    console_commands.py on AWS or here (--local): console (the approvers' web page, pipelines/console/)
    options.py         the options two or more commands take, declared once, and option() for the others
    output.py          tables, moments and durations

Every command takes `--config FILE` (default `./pipeline.yaml`) and `--profile NAME`.
"""

from pipelines.cli import (  # noqa: F401  (each registers its commands)
    aws_commands,
    batch_commands,
    commands,
    console_commands,
    data_commands,
    local_commands,
    monitor_commands,
    report_commands,
    review_commands,
)
from pipelines.cli.app import app

__all__ = ["app"]

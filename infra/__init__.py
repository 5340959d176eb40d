"""The AWS CDK app's constructs, one per concern; app.py composes them from pipeline.yaml.

storage.py     the KMS key and the buckets (data, artifacts, access logs)
roles.py       the SageMaker execution role and the pipeline's own role
images.py      the processing and training images (Docker image assets) and the serving image
pipeline.py    the model package group and the SageMaker Pipeline with the rendered definition
deployment.py  the deployment function and its rules (approval, endpoint in service)
triggers.py    the new-manifest trigger (S3 -> EventBridge -> function -> pipeline)
monitoring.py  the SNS topic, failure and approval notices, endpoint alarms
people.py      the approvers' and operators' policies (the CLI's identities)
cross_account.py  the grants to release stages in accounts of their own (deployment.accounts)
stage_stack.py  a release stage's stack in an account of its own: its roles and the bus approvals reach
drift.py       drift monitoring: the schedule, the starter, the job's role, its metrics and alarm
rules.py       the EventBridge rules' one shape
stack.py       the workflow stack that holds them, and the stage CI/CD deploys
cicd.py        the self-mutating CodePipeline
nag.py         cdk-nag's AwsSolutions checks and the acknowledged findings
"""

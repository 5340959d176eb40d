"""The programs that run inside the SageMaker jobs and endpoints, one folder each.

They follow SageMaker's container contracts, take every path as an argument with that contract's default,
and import neither the SageMaker SDK nor the CDK, so the local engine runs them unchanged.
"""

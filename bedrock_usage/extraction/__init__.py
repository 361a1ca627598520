"""Reading Bedrock's usage metrics from CloudWatch with boto3."""

"""The AWS CDK app that deploys lambda_app: `npx cdk synth|deploy -c stage=dev|prod`."""

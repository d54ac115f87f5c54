#!/bin/bash
# MLflow tracking server bootstrap (fixture stand-in; the deployed script is not
# part of the facts). Nothing runs it on the emulator.
set -euo pipefail

export AWS_DEFAULT_REGION="${aws_region}"
DB_PASSWORD=$(aws ssm get-parameter --name "${ssm_prefix}/database/password" --with-decryption --query Parameter.Value --output text)
DB_USER=$(aws ssm get-parameter --name "${ssm_prefix}/database/username" --query Parameter.Value --output text)

cat > /etc/mlflow.env <<ENV
MLFLOW_BACKEND_STORE_URI=mysql+pymysql://$${DB_USER}:$${DB_PASSWORD}@${db_endpoint}:3306/${db_name}
MLFLOW_DEFAULT_ARTIFACT_ROOT=s3://${s3_bucket}/artifacts
MLFLOW_CACHE_ENDPOINT=${cache_endpoint}
MLFLOW_LOG_GROUP=${log_group}
ENV

dnf install -y python3-pip nginx
pip3 install mlflow pymysql boto3
systemctl enable --now nginx

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
}

# The AWS emulator (moto in server mode with tests/emulator/moto_extensions.py),
# configured like the product's emulator provider (modules/providers.py).
provider "aws" {
  region                      = var.aws_region
  access_key                  = "emulator"
  secret_key                  = "emulator"
  max_retries                 = 2
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  # false: group-referencing security group rules need the account id.
  skip_requesting_account_id = false
  s3_use_path_style          = true

  endpoints {
    autoscaling = var.endpoint
    cloudwatch  = var.endpoint
    ec2         = var.endpoint
    elasticache = var.endpoint
    elbv2       = var.endpoint
    iam         = var.endpoint
    kms         = var.endpoint
    lambda      = var.endpoint
    logs        = var.endpoint
    rds         = var.endpoint
    s3          = var.endpoint
    sns         = var.endpoint
    ssm         = var.endpoint
    sts         = var.endpoint
  }
}

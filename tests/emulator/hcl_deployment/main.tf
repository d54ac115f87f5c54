# The public HCL deployment's environments/dev root, rebuilt from the facts in
# shared/spec (hcl-deployment-*.{tsv,json}) as a test fixture for the emulator.
# Left out (see README.md): tls_private_key.mlflow_key, random_id.bucket_suffix,
# module.database.random_password.db_password (literals passed as variables
# instead), module.security.aws_ec2_serial_console_access.mlflow and
# module.monitoring.aws_cloudwatch_query_definition.{error_analysis,performance_analysis}
# (moto cannot create them).

data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  name_prefix = "${var.project_name}-${var.environment}"

  common_tags = {
    Project     = var.project_name
    Environment = var.environment
    ManagedBy   = "Terraform"
    Owner       = var.owner
    CostCenter  = var.cost_center
  }

  availability_zones = slice(data.aws_availability_zones.available.names, 0, var.az_count)

  # "${local.name_prefix}-artifacts-${random_id.bucket_suffix.hex}" in the HCL.
  artifacts_bucket_name = "${local.name_prefix}-artifacts-${var.bucket_suffix}"
}

resource "aws_key_pair" "mlflow_key" {
  key_name   = "${local.name_prefix}-key"
  public_key = var.ssh_public_key

  tags = {
    Name = "${local.name_prefix}-keypair"
  }
}

resource "aws_sns_topic" "alerts" {
  name              = "${local.name_prefix}-alerts"
  kms_master_key_id = module.security.kms_key_arn

  tags = local.common_tags
}

module "networking" {
  source = "./modules/networking"

  project_name         = var.project_name
  environment          = var.environment
  aws_region           = var.aws_region
  vpc_cidr             = var.vpc_cidr
  availability_zones   = local.availability_zones
  public_subnets       = var.public_subnets
  private_subnets      = var.private_subnets
  database_subnets     = var.database_subnets
  enable_nat_gateway   = var.enable_nat_gateway
  enable_vpc_endpoints = var.enable_vpc_endpoints
  common_tags          = local.common_tags
}

module "security" {
  source = "./modules/security"

  project_name          = var.project_name
  environment           = var.environment
  vpc_id                = module.networking.vpc_id
  db_port               = var.db_engine == "mysql" ? 3306 : 5432
  artifacts_bucket_name = local.artifacts_bucket_name
  common_tags           = local.common_tags
}

module "database" {
  source = "./modules/database"

  project_name                  = var.project_name
  environment                   = var.environment
  db_password                   = var.db_password
  db_engine                     = var.db_engine
  db_engine_version             = var.db_engine_version
  db_instance_class             = var.db_instance_class
  db_allocated_storage          = var.db_allocated_storage
  db_max_allocated_storage      = var.db_max_allocated_storage
  backup_retention_period       = var.db_backup_retention_period
  monitoring_interval           = var.db_monitoring_interval
  db_subnet_group_name          = module.networking.db_subnet_group_name
  database_security_group_id    = module.security.database_security_group_id
  enable_elasticache            = var.enable_elasticache
  cache_node_type               = var.cache_node_type
  cache_subnet_ids              = module.networking.private_subnet_ids
  elasticache_security_group_id = module.security.elasticache_security_group_id
  kms_key_arn                   = module.security.kms_key_arn
  log_retention_days            = var.log_retention_days
  common_tags                   = local.common_tags
}

module "mlflow" {
  source = "./modules/mlflow"

  project_name             = var.project_name
  environment              = var.environment
  aws_region               = var.aws_region
  vpc_id                   = module.networking.vpc_id
  public_subnet_ids        = module.networking.public_subnet_ids
  private_subnet_ids       = module.networking.private_subnet_ids
  alb_security_group_id    = module.security.alb_security_group_id
  mlflow_security_group_id = module.security.mlflow_app_security_group_id
  instance_profile_name    = module.security.instance_profile_name
  kms_key_arn              = module.security.kms_key_arn
  key_name                 = aws_key_pair.mlflow_key.key_name
  artifacts_bucket_name    = local.artifacts_bucket_name
  db_endpoint              = module.database.db_endpoint
  db_name                  = module.database.db_name
  cache_endpoint           = module.database.cache_endpoint
  instance_type            = var.instance_type
  min_size                 = var.min_size
  max_size                 = var.max_size
  desired_capacity         = var.desired_capacity
  enable_https             = var.enable_https
  certificate_arn          = var.certificate_arn
  log_retention_days       = var.log_retention_days
  common_tags              = local.common_tags
}

module "monitoring" {
  source = "./modules/monitoring"

  project_name      = var.project_name
  environment       = var.environment
  aws_region        = var.aws_region
  alb_arn_suffix    = module.mlflow.alb_arn_suffix
  asg_name          = module.mlflow.asg_name
  db_instance_id    = module.database.db_instance_id
  sns_topic_arn     = aws_sns_topic.alerts.arn
  slack_webhook_url = var.slack_webhook_url
  common_tags       = local.common_tags
}

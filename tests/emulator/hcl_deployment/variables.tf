# Emulator and test inputs (no defaults: tests/emulator/hcl_fixture.py passes them).
variable "endpoint" {
  description = "Base URL of the AWS emulator, e.g. http://127.0.0.1:5000"
  type        = string
}

variable "bucket_suffix" {
  description = "Stand-in for random_id.bucket_suffix.hex (tests/support.py RANDOM_SUFFIX_STANDIN)"
  type        = string
}

variable "db_password" {
  description = "Stand-in for module.database.random_password.db_password.result (a test password)"
  type        = string
  sensitive   = true
}

variable "ssh_public_key" {
  description = "Public half of the deployment's key pair (tls_private_key.mlflow_key in the HCL)"
  type        = string
}

# environments/dev values of the public deployment.
variable "aws_region" {
  type    = string
  default = "us-east-1"
}

variable "project_name" {
  type    = string
  default = "mlflow"
}

variable "environment" {
  type    = string
  default = "dev"
}

variable "owner" {
  type    = string
  default = "adopt-experiment"
}

variable "cost_center" {
  type    = string
  default = "development"
}

variable "vpc_cidr" {
  type    = string
  default = "10.0.0.0/16"
}

variable "az_count" {
  type    = number
  default = 2
}

variable "public_subnets" {
  type    = list(string)
  default = ["10.0.1.0/24", "10.0.2.0/24"]
}

variable "private_subnets" {
  type    = list(string)
  default = ["10.0.11.0/24", "10.0.12.0/24"]
}

variable "database_subnets" {
  type    = list(string)
  default = ["10.0.21.0/24", "10.0.22.0/24"]
}

variable "enable_nat_gateway" {
  type    = bool
  default = true
}

variable "enable_vpc_endpoints" {
  type    = bool
  default = true
}

variable "enable_elasticache" {
  type    = bool
  default = true
}

variable "enable_https" {
  type    = bool
  default = false
}

variable "certificate_arn" {
  type    = string
  default = ""
}

variable "db_engine" {
  type    = string
  default = "mysql"
}

variable "db_engine_version" {
  type    = string
  default = "8.0.43"
}

variable "db_instance_class" {
  type    = string
  default = "db.t3.micro"
}

variable "db_allocated_storage" {
  type    = number
  default = 20
}

variable "db_max_allocated_storage" {
  type    = number
  default = 100
}

variable "db_backup_retention_period" {
  type    = number
  default = 7
}

# 0 in the deployed environments/dev: the state holds neither the database's
# monitoring_role_arn nor module.database.aws_iam_role.rds_enhanced_monitoring.
variable "db_monitoring_interval" {
  type    = number
  default = 0
}

variable "cache_node_type" {
  type    = string
  default = "cache.t3.micro"
}

variable "instance_type" {
  type    = string
  default = "t3.medium"
}

variable "min_size" {
  type    = number
  default = 1
}

variable "max_size" {
  type    = number
  default = 2
}

variable "desired_capacity" {
  type    = number
  default = 1
}

variable "log_retention_days" {
  type    = number
  default = 30
}

variable "slack_webhook_url" {
  type      = string
  default   = ""
  sensitive = true
}

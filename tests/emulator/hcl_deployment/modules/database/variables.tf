variable "project_name" { type = string }
variable "environment" { type = string }

variable "db_password" {
  type      = string
  sensitive = true
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

variable "db_name" {
  type    = string
  default = "mlflow"
}

variable "db_username" {
  type    = string
  default = "mlflow_admin"
}

variable "backup_retention_period" {
  type    = number
  default = 7
}

variable "monitoring_interval" {
  type    = number
  default = 0
}

variable "db_subnet_group_name" { type = string }
variable "database_security_group_id" { type = string }

variable "enable_elasticache" {
  type    = bool
  default = true
}

variable "cache_node_type" {
  type    = string
  default = "cache.t3.micro"
}

variable "cache_subnet_ids" { type = list(string) }
variable "elasticache_security_group_id" { type = string }
variable "kms_key_arn" { type = string }

variable "log_retention_days" {
  type    = number
  default = 30
}

variable "common_tags" {
  type    = map(string)
  default = {}
}

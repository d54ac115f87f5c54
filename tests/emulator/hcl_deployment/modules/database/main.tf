locals {
  name_prefix = "${var.project_name}-${var.environment}"
  db_port     = var.db_engine == "mysql" ? 3306 : 5432
}

# random_password.db_password of the HCL is replaced by var.db_password (a
# literal test password): the hashicorp/random provider is not available offline.

resource "aws_db_parameter_group" "mlflow" {
  family = var.db_engine == "mysql" ? "mysql8.0" : "postgres15"
  name   = "${local.name_prefix}-db-params"

  parameter {
    name         = "innodb_buffer_pool_size"
    value        = "{DBInstanceClassMemory*3/4}"
    apply_method = "immediate"
  }

  tags = var.common_tags
}

resource "aws_db_instance" "mlflow" {
  identifier = "${local.name_prefix}-db"

  engine         = var.db_engine
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_name  = var.db_name
  username = var.db_username
  password = var.db_password
  port     = local.db_port

  vpc_security_group_ids = [var.database_security_group_id]
  db_subnet_group_name   = var.db_subnet_group_name
  parameter_group_name   = aws_db_parameter_group.mlflow.name
  publicly_accessible    = false
  multi_az               = false

  backup_retention_period = var.backup_retention_period
  backup_window           = "03:00-04:30"
  maintenance_window      = "sun:05:00-sun:07:00"

  monitoring_interval = var.monitoring_interval
  monitoring_role_arn = var.monitoring_interval > 0 ? aws_iam_role.rds_enhanced_monitoring[0].arn : null

  performance_insights_enabled = false
  deletion_protection          = false
  skip_final_snapshot          = true

  tags = merge(var.common_tags, {
    Name = "${local.name_prefix}-db"
  })
}

resource "aws_iam_role" "rds_enhanced_monitoring" {
  count = var.monitoring_interval > 0 ? 1 : 0

  name_prefix = "${local.name_prefix}-rds-monitoring"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Action    = "sts:AssumeRole"
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
    }]
  })

  tags = var.common_tags
}

resource "aws_iam_role_policy_attachment" "rds_enhanced_monitoring" {
  count = var.monitoring_interval > 0 ? 1 : 0

  role       = aws_iam_role.rds_enhanced_monitoring[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# ---------------------------------------------------------------- ElastiCache

resource "aws_elasticache_subnet_group" "mlflow" {
  count = var.enable_elasticache ? 1 : 0

  name       = "${local.name_prefix}-cache-subnet"
  subnet_ids = var.cache_subnet_ids

  tags = var.common_tags
}

resource "aws_elasticache_parameter_group" "mlflow" {
  count = var.enable_elasticache ? 1 : 0

  family = "redis7"
  name   = "${local.name_prefix}-cache-params"

  tags = var.common_tags
}

resource "aws_cloudwatch_log_group" "elasticache_slow" {
  count = var.enable_elasticache ? 1 : 0

  name              = "/aws/elasticache/${local.name_prefix}-slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = var.common_tags
}

# No kms_key_id: the deployed cache is encrypted at rest with the AWS managed key.
resource "aws_elasticache_replication_group" "mlflow" {
  count = var.enable_elasticache ? 1 : 0

  replication_group_id = "${local.name_prefix}-cache"
  description          = "Redis cache for MLflow sessions"

  engine               = "redis"
  engine_version       = "7.1"
  node_type            = var.cache_node_type
  num_cache_clusters   = 1
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.mlflow[0].name
  subnet_group_name    = aws_elasticache_subnet_group.mlflow[0].name
  security_group_ids   = [var.elasticache_security_group_id]

  automatic_failover_enabled = false
  multi_az_enabled           = false
  auto_minor_version_upgrade = false

  at_rest_encryption_enabled = true
  transit_encryption_enabled = true

  snapshot_retention_limit = 7
  snapshot_window          = "05:00-07:00"
  maintenance_window       = "Sun:07:00-Sun:09:00"

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.elasticache_slow[0].name
    destination_type = "cloudwatch-logs"
    log_format       = "text"
    log_type         = "slow-log"
  }

  tags = merge(var.common_tags, {
    Name = "${local.name_prefix}-cache"
  })
}

# ---------------------------------------------------------------- SSM parameters

resource "aws_ssm_parameter" "db_host" {
  name  = "/${local.name_prefix}/database/host"
  type  = "String"
  value = aws_db_instance.mlflow.address

  tags = var.common_tags
}

resource "aws_ssm_parameter" "db_port" {
  name  = "/${local.name_prefix}/database/port"
  type  = "String"
  value = tostring(aws_db_instance.mlflow.port)

  tags = var.common_tags
}

resource "aws_ssm_parameter" "db_name" {
  name  = "/${local.name_prefix}/database/name"
  type  = "String"
  value = aws_db_instance.mlflow.db_name

  tags = var.common_tags
}

resource "aws_ssm_parameter" "db_username" {
  name  = "/${local.name_prefix}/database/username"
  type  = "String"
  value = aws_db_instance.mlflow.username

  tags = var.common_tags
}

resource "aws_ssm_parameter" "db_password" {
  name  = "/${local.name_prefix}/database/password"
  type  = "SecureString"
  value = var.db_password

  tags = var.common_tags
}

resource "aws_ssm_parameter" "cache_endpoint" {
  count = var.enable_elasticache ? 1 : 0

  name  = "/${local.name_prefix}/cache/endpoint"
  type  = "String"
  value = aws_elasticache_replication_group.mlflow[0].primary_endpoint_address

  tags = var.common_tags
}

resource "aws_ssm_parameter" "cache_port" {
  count = var.enable_elasticache ? 1 : 0

  name  = "/${local.name_prefix}/cache/port"
  type  = "String"
  value = tostring(aws_elasticache_replication_group.mlflow[0].port)

  tags = var.common_tags
}

output "db_instance_id" {
  value = aws_db_instance.mlflow.id
}

output "db_endpoint" {
  value = aws_db_instance.mlflow.address
}

output "db_port" {
  value = aws_db_instance.mlflow.port
}

output "db_name" {
  value = aws_db_instance.mlflow.db_name
}

output "cache_endpoint" {
  value = var.enable_elasticache ? aws_elasticache_replication_group.mlflow[0].primary_endpoint_address : ""
}

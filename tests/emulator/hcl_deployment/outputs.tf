output "vpc_id" {
  value = module.networking.vpc_id
}

output "alb_dns_name" {
  value = module.mlflow.alb_dns_name
}

output "mlflow_url" {
  value = "http://${module.mlflow.alb_dns_name}"
}

output "artifacts_bucket" {
  value = module.mlflow.artifacts_bucket_name
}

output "db_endpoint" {
  value = module.database.db_endpoint
}

output "sns_topic_arn" {
  value = aws_sns_topic.alerts.arn
}

output "alb_security_group_id" {
  value = aws_security_group.alb.id
}

output "mlflow_app_security_group_id" {
  value = aws_security_group.mlflow_app.id
}

output "database_security_group_id" {
  value = aws_security_group.database.id
}

output "elasticache_security_group_id" {
  value = aws_security_group.elasticache.id
}

output "instance_role_name" {
  value = aws_iam_role.mlflow_instance_role.name
}

output "instance_profile_name" {
  value = aws_iam_instance_profile.mlflow_instance_profile.name
}

output "kms_key_id" {
  value = aws_kms_key.mlflow.key_id
}

output "kms_key_arn" {
  value = aws_kms_key.mlflow.arn
}

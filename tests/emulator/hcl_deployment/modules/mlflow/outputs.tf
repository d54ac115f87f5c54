output "alb_arn" {
  value = aws_lb.mlflow.arn
}

output "alb_arn_suffix" {
  value = aws_lb.mlflow.arn_suffix
}

output "alb_dns_name" {
  value = aws_lb.mlflow.dns_name
}

output "target_group_arn" {
  value = aws_lb_target_group.mlflow.arn
}

output "asg_name" {
  value = aws_autoscaling_group.mlflow.name
}

output "artifacts_bucket_name" {
  value = aws_s3_bucket.mlflow_artifacts.id
}

output "alb_logs_bucket_name" {
  value = aws_s3_bucket.alb_logs.id
}

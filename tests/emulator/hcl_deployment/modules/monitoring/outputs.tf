output "alarm_names" {
  value = [
    aws_cloudwatch_metric_alarm.alb_response_time.alarm_name,
    aws_cloudwatch_metric_alarm.alb_error_rate.alarm_name,
    aws_cloudwatch_metric_alarm.asg_cpu_high.alarm_name,
    aws_cloudwatch_metric_alarm.asg_memory_high.alarm_name,
    aws_cloudwatch_metric_alarm.rds_cpu_high.alarm_name,
    aws_cloudwatch_metric_alarm.rds_connections.alarm_name,
  ]
}

output "dashboard_name" {
  value = aws_cloudwatch_dashboard.mlflow_main.dashboard_name
}

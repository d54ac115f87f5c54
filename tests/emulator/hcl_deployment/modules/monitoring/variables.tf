variable "project_name" { type = string }
variable "environment" { type = string }
variable "aws_region" { type = string }
variable "alb_arn_suffix" { type = string }
variable "asg_name" { type = string }
variable "db_instance_id" { type = string }
variable "sns_topic_arn" { type = string }

variable "slack_webhook_url" {
  type      = string
  default   = ""
  sensitive = true
}

variable "common_tags" {
  type    = map(string)
  default = {}
}

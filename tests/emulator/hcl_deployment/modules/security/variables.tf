variable "project_name" { type = string }
variable "environment" { type = string }
variable "vpc_id" { type = string }

variable "db_port" {
  type    = number
  default = 3306
}

variable "artifacts_bucket_name" { type = string }

variable "common_tags" {
  type    = map(string)
  default = {}
}

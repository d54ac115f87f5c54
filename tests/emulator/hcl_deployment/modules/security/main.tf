locals {
  name_prefix = "${var.project_name}-${var.environment}"
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

# ---------------------------------------------------------------- security groups

resource "aws_security_group" "alb" {
  name_prefix = "${local.name_prefix}-alb"
  vpc_id      = var.vpc_id

  ingress {
    description = "HTTP"
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  ingress {
    description = "HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(var.common_tags, {
    Name = "${local.name_prefix}-alb-sg"
  })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "mlflow_app" {
  name_prefix = "${local.name_prefix}-mlflow-app"
  vpc_id      = var.vpc_id

  ingress {
    description     = "HTTP from ALB (nginx)"
    from_port       = 80
    to_port         = 80
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }

  ingress {
    description     = "MLflow from ALB"
    from_port       = 5000
    to_port         = 5000
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }

  ingress {
    description = "SSH from bastion"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(var.common_tags, {
    Name = "${local.name_prefix}-mlflow-app-sg"
  })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "database" {
  name_prefix = "${local.name_prefix}-database"
  vpc_id      = var.vpc_id

  ingress {
    description     = "MySQL/PostgreSQL from MLflow"
    from_port       = var.db_port
    to_port         = var.db_port
    protocol        = "tcp"
    security_groups = [aws_security_group.mlflow_app.id]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(var.common_tags, {
    Name = "${local.name_prefix}-database-sg"
  })

  lifecycle {
    create_before_destroy = true
  }
}

# No egress block: the deployed group has no egress rule (Terraform removes
# AWS's default allow-all egress rule from a group it creates).
resource "aws_security_group" "elasticache" {
  name_prefix = "${local.name_prefix}-elasticache"
  vpc_id      = var.vpc_id

  ingress {
    description     = "Redis from MLflow"
    from_port       = 6379
    to_port         = 6379
    protocol        = "tcp"
    security_groups = [aws_security_group.mlflow_app.id]
  }

  tags = merge(var.common_tags, {
    Name = "${local.name_prefix}-elasticache-sg"
  })

  lifecycle {
    create_before_destroy = true
  }
}

# ---------------------------------------------------------------- IAM

resource "aws_iam_role" "mlflow_instance_role" {
  name_prefix = "${local.name_prefix}-mlflow-instance"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Action    = "sts:AssumeRole"
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
    }]
  })

  tags = var.common_tags
}

resource "aws_iam_policy" "mlflow_s3_policy" {
  name_prefix = "${local.name_prefix}-mlflow-s3"

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect = "Allow"
        Action = [
          "s3:GetObject",
          "s3:PutObject",
          "s3:DeleteObject",
          "s3:GetObjectVersion",
        ]
        Resource = "arn:aws:s3:::${var.artifacts_bucket_name}/*"
      },
      {
        Effect   = "Allow"
        Action   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketVersions"]
        Resource = "arn:aws:s3:::${var.artifacts_bucket_name}"
      },
    ]
  })

  tags = var.common_tags
}

resource "aws_iam_policy" "mlflow_cloudwatch_policy" {
  name_prefix = "${local.name_prefix}-mlflow-cloudwatch"

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect = "Allow"
        Action = [
          "logs:CreateLogGroup",
          "logs:CreateLogStream",
          "logs:PutLogEvents",
          "logs:DescribeLogStreams",
          "logs:DescribeLogGroups",
        ]
        Resource = "arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:*"
      },
      {
        Effect   = "Allow"
        Action   = ["cloudwatch:PutMetricData", "ec2:DescribeVolumes", "ec2:DescribeTags"]
        Resource = "*"
      },
    ]
  })

  tags = var.common_tags
}

resource "aws_iam_policy" "mlflow_ssm_policy" {
  name_prefix = "${local.name_prefix}-mlflow-ssm"

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
      Resource = "arn:aws:ssm:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:parameter/${local.name_prefix}/*"
    }]
  })

  tags = var.common_tags
}

resource "aws_iam_policy" "mlflow_kms_policy" {
  name_prefix = "${local.name_prefix}-mlflow-kms"

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
      Resource = aws_kms_key.mlflow.arn
    }]
  })

  tags = var.common_tags
}

resource "aws_iam_role_policy_attachment" "mlflow_s3_policy_attachment" {
  role       = aws_iam_role.mlflow_instance_role.name
  policy_arn = aws_iam_policy.mlflow_s3_policy.arn
}

resource "aws_iam_role_policy_attachment" "mlflow_cloudwatch_policy_attachment" {
  role       = aws_iam_role.mlflow_instance_role.name
  policy_arn = aws_iam_policy.mlflow_cloudwatch_policy.arn
}

resource "aws_iam_role_policy_attachment" "mlflow_ssm_policy_attachment" {
  role       = aws_iam_role.mlflow_instance_role.name
  policy_arn = aws_iam_policy.mlflow_ssm_policy.arn
}

resource "aws_iam_role_policy_attachment" "mlflow_kms_policy_attachment" {
  role       = aws_iam_role.mlflow_instance_role.name
  policy_arn = aws_iam_policy.mlflow_kms_policy.arn
}

resource "aws_iam_role_policy_attachment" "mlflow_ssm_managed_policy" {
  role       = aws_iam_role.mlflow_instance_role.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "mlflow_serial_console_policy" {
  name = "${local.name_prefix}-mlflow-serial-console-policy"
  role = aws_iam_role.mlflow_instance_role.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect = "Allow"
      Action = [
        "ec2:GetSerialConsoleAccessStatus",
        "ec2:EnableSerialConsoleAccess",
        "ec2:DisableSerialConsoleAccess",
        "ec2:GetConsoleOutput",
        "ec2:GetConsoleScreenshot",
      ]
      Resource = "*"
    }]
  })
}

resource "aws_iam_instance_profile" "mlflow_instance_profile" {
  name_prefix = "${local.name_prefix}-mlflow-instance"
  role        = aws_iam_role.mlflow_instance_role.name

  tags = var.common_tags
}

# aws_ec2_serial_console_access.mlflow of the HCL is left out: moto 5.2.5 does
# not implement the serial console access API (see ../../README.md).

# ---------------------------------------------------------------- KMS

resource "aws_kms_key" "mlflow" {
  description             = "KMS key for MLflow encryption"
  deletion_window_in_days = 7

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "Enable IAM User Permissions"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "Allow CloudWatch Logs"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
      },
      {
        Sid       = "Allow SNS"
        Effect    = "Allow"
        Principal = { Service = "sns.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ]
  })

  tags = merge(var.common_tags, {
    Name = "${local.name_prefix}-kms-key"
  })
}

resource "aws_kms_alias" "mlflow" {
  name          = "alias/${local.name_prefix}-mlflow"
  target_key_id = aws_kms_key.mlflow.key_id
}

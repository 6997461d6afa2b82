# Two roles, each limited to what it is for:
#  - execution role: ECS pulls the image, writes the relay's logs and reads
#    the container's secrets;
#  - task role: the relay itself, which only mounts the certificate storage
#    (it talks to Kafka and the ACME CA over the network, not AWS APIs).

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

locals {
  # ECR repository of the image, when it is in ECR: pulls are then limited to it.
  ecr_match = try(regex("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(\\.cn)?/([^@:]+)", var.image), null)
  ecr_repository_arn = local.ecr_match == null ? null : format(
    "arn:%s:ecr:%s:%s:repository/%s", data.aws_partition.current.partition, local.ecr_match[1], local.ecr_match[0], local.ecr_match[3]
  )
  secret_arns_sm  = [for arn in values(local.secrets) : arn if can(regex("^arn:[^:]+:secretsmanager:", arn))]
  secret_arns_ssm = [for arn in values(local.secrets) : arn if can(regex("^arn:[^:]+:ssm:", arn))]
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-exec-"
  description        = "ECS execution role of the roomlog relays: image pull, logs, secrets"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.relay.arn}:*"]
  }

  dynamic "statement" {
    for_each = local.ecr_repository_arn == null ? [] : [1]
    content {
      sid       = "EcrAuth"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"] # this action has no resource-level permissions
    }
  }

  dynamic "statement" {
    for_each = local.ecr_repository_arn == null ? [] : [local.ecr_repository_arn]
    content {
      sid       = "EcrPull"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = length(local.secret_arns_sm) == 0 ? [] : [1]
    content {
      sid       = "Secrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.secret_arns_sm
    }
  }

  dynamic "statement" {
    for_each = length(local.secret_arns_ssm) == 0 ? [] : [1]
    content {
      sid       = "Parameters"
      actions   = ["ssm:GetParameters"]
      resources = local.secret_arns_ssm
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "roomlog-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-task-"
  description        = "Role of the roomlog relay containers: mount the shared certificate storage"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "CertificateStorage"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.certs.arn]
    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.certs.arn]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "roomlog-task"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

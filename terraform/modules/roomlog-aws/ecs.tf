# Relays as an ECS service on Fargate: one task per relay, each with its own
# ENI (awsvpc), registered by IP in the NLB's target groups.

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }

  tags = local.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_ecs_task_definition" "relay" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.task_cpu)
  memory                   = tostring(var.task_memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "certs"
    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.certs.id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = aws_efs_access_point.certs.id
        iam             = "ENABLED"
      }
    }
  }

  container_definitions = jsonencode([
    {
      name                   = "relay"
      image                  = var.image
      essential              = true
      user                   = "65532:65532"
      readonlyRootFilesystem = true
      stopTimeout            = var.stop_timeout_seconds
      portMappings = [
        { name = "tls", containerPort = var.container_tls_port, protocol = "tcp" },
        { name = "http", containerPort = var.container_http_port, protocol = "tcp" },
      ]
      environment = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
      secrets     = [for k in sort(keys(local.secrets)) : { name = k, valueFrom = local.secrets[k] }]
      # One socket per client.
      ulimits = [{ name = "nofile", softLimit = 1048576, hardLimit = 1048576 }]
      mountPoints = [
        { sourceVolume = "certs", containerPath = var.tls_storage_path, readOnly = false },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.relay.name
          "awslogs-region"        = data.aws_region.current.name
          "awslogs-stream-prefix" = "relay"
          "mode"                  = "non-blocking"
          "max-buffer-size"       = "4m"
        }
      }
    },
  ])

  tags = local.tags
}

resource "aws_ecs_service" "relay" {
  name                               = var.name
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.relay.arn
  desired_count                      = var.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"
  wait_for_steady_state              = false

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.tls.arn
    container_name   = "relay"
    container_port   = var.container_tls_port
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.http.arn
    container_name   = "relay"
    container_port   = var.container_http_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  tags = local.tags

  lifecycle {
    # Auto scaling owns the count after the first deployment.
    ignore_changes = [desired_count]

    precondition {
      condition     = var.create_msk || length(var.kafka_bootstrap_brokers) > 0
      error_message = "Set create_msk = true, or give kafka_bootstrap_brokers of an existing cluster."
    }
    precondition {
      condition     = var.jwks_url != "" || length(setintersection(keys(merge(var.environment, var.secret_arns)), ["ROOMLOG_JWKS_URL", "ROOMLOG_JWT_PUBLIC_KEY_FILE", "ROOMLOG_JWT_HS256_SECRET_FILE", "ROOMLOG_ANONYMOUS"])) > 0
      error_message = "Configure client authentication: jwks_url, or ROOMLOG_JWKS_URL / ROOMLOG_JWT_PUBLIC_KEY_FILE / ROOMLOG_JWT_HS256_SECRET_FILE (or, for a demo only, ROOMLOG_ANONYMOUS) in environment or secrets."
    }
    precondition {
      condition     = var.min_count <= var.desired_count && var.desired_count <= var.max_count
      error_message = "desired_count must be between min_count and max_count."
    }
    precondition {
      condition     = var.kafka_sasl_mechanism == "" || (var.kafka_sasl_username != "" && (var.kafka_sasl_password_secret_arn != "" || local.sasl_password_given))
      error_message = "kafka_sasl_mechanism needs kafka_sasl_username and a password (kafka_sasl_password_secret_arn or kafka_sasl_password)."
    }
  }

  depends_on = [aws_lb_listener.tls, aws_lb_listener.http, aws_efs_mount_target.certs, aws_iam_role_policy.execution]
}

resource "aws_appautoscaling_target" "relay" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.relay.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.relay.service_namespace
  resource_id        = aws_appautoscaling_target.relay.resource_id
  scalable_dimension = aws_appautoscaling_target.relay.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = var.cpu_target_percent
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
    # Out fast, in slowly: each removed relay makes its clients reconnect.
    scale_out_cooldown = 60
    scale_in_cooldown  = 600
  }
}

# CloudWatch: the relays' logs, and alarms on what AWS itself measures. The
# relays' own Prometheus metrics (/metrics) are scraped by a Prometheus or
# Amazon Managed Service for Prometheus collector (infra/prometheus), not here.

resource "aws_cloudwatch_log_group" "relay" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_relays" {
  alarm_name          = "${var.name}-unhealthy-relays"
  alarm_description   = "A roomlog relay fails the NLB health check (/readyz) for 5 minutes."
  namespace           = "AWS/NetworkELB"
  metric_name         = "UnHealthyHostCount"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.tls.arn_suffix
  }
  alarm_actions = var.alarm_actions
  ok_actions    = var.alarm_actions
  tags          = local.tags
}

resource "aws_cloudwatch_metric_alarm" "no_healthy_relays" {
  alarm_name          = "${var.name}-no-healthy-relays"
  alarm_description   = "No roomlog relay is healthy behind the NLB."
  namespace           = "AWS/NetworkELB"
  metric_name         = "HealthyHostCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.tls.arn_suffix
  }
  alarm_actions = var.alarm_actions
  ok_actions    = var.alarm_actions
  tags          = local.tags
}

resource "aws_cloudwatch_metric_alarm" "cpu_high" {
  alarm_name          = "${var.name}-cpu-high"
  alarm_description   = "roomlog relays above 85% CPU for 15 minutes (auto scaling at its maximum?)."
  namespace           = "AWS/ECS"
  metric_name         = "CPUUtilization"
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  threshold           = 85
  comparison_operator = "GreaterThanThreshold"
  dimensions = {
    ClusterName = aws_ecs_cluster.this.name
    ServiceName = aws_ecs_service.relay.name
  }
  alarm_actions = var.alarm_actions
  ok_actions    = var.alarm_actions
  tags          = local.tags
}

resource "aws_cloudwatch_metric_alarm" "relay_errors" {
  alarm_name          = "${var.name}-relay-errors"
  alarm_description   = "roomlog relays log errors (level ERROR) at more than 10 per 5 minutes."
  namespace           = "roomlog/${var.name}"
  metric_name         = "RelayErrorLogs"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 10
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

# The relays log JSON (ROOMLOG_LOG_FORMAT=json): count the error lines.
resource "aws_cloudwatch_log_metric_filter" "relay_errors" {
  name           = "${var.name}-relay-errors"
  log_group_name = aws_cloudwatch_log_group.relay.name
  pattern        = "{ $.level = \"ERROR\" }"

  metric_transformation {
    name          = "RelayErrorLogs"
    namespace     = "roomlog/${var.name}"
    value         = "1"
    default_value = "0"
  }
}

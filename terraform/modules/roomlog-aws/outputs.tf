output "nlb_dns_name" {
  description = "DNS name of the Network Load Balancer: point the tls_domains at it (CNAME, or a Route 53 alias with nlb_zone_id)."
  value       = aws_lb.this.dns_name
}

output "nlb_zone_id" {
  description = "Route 53 hosted zone ID of the NLB, for alias records."
  value       = aws_lb.this.zone_id
}

output "nlb_arn" {
  description = "ARN of the Network Load Balancer."
  value       = aws_lb.this.arn
}

output "websocket_urls" {
  description = "wss:// URLs of the relays, one per domain."
  value       = [for d in var.tls_domains : "wss://${d}/ws"]
}

output "ecs_cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "ecs_service_name" {
  description = "Name of the ECS service running the relays."
  value       = aws_ecs_service.relay.name
}

output "task_definition_arn" {
  description = "ARN of the relay task definition revision."
  value       = aws_ecs_task_definition.relay.arn
}

output "log_group_name" {
  description = "CloudWatch Logs group of the relays."
  value       = aws_cloudwatch_log_group.relay.name
}

output "certificate_file_system_id" {
  description = "EFS file system holding the shared ACME certificate storage."
  value       = aws_efs_file_system.certs.id
}

output "certificate_access_point_id" {
  description = "EFS access point the relays mount at tls_storage_path."
  value       = aws_efs_access_point.certs.id
}

output "kafka_bootstrap_brokers" {
  description = "Bootstrap brokers the relays use (MSK's, or kafka_bootstrap_brokers joined)."
  value       = local.kafka_brokers
}

output "msk_cluster_arn" {
  description = "ARN of the MSK cluster, or null when create_msk is false."
  value       = var.create_msk ? aws_msk_cluster.this[0].arn : null
}

output "task_security_group_id" {
  description = "Security group of the relay tasks (allow it on external brokers when create_msk is false)."
  value       = aws_security_group.tasks.id
}

output "task_role_arn" {
  description = "IAM role of the relay containers."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "IAM execution role of the relay tasks."
  value       = aws_iam_role.execution.arn
}

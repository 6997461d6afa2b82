output "websocket_urls" {
  description = "Where clients connect."
  value       = module.roomlog.websocket_urls
}

output "nlb_dns_name" {
  description = "DNS name of the load balancer (the domain must resolve to it before ACME can succeed)."
  value       = module.roomlog.nlb_dns_name
}

output "kafka_bootstrap_brokers" {
  description = "Bootstrap brokers of the log."
  value       = module.roomlog.kafka_bootstrap_brokers
}

output "log_group_name" {
  description = "CloudWatch Logs group of the relays."
  value       = module.roomlog.log_group_name
}

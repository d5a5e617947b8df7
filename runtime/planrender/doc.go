// Package planrender prints a Terraform plan the way `terraform plan` does,
// from the structured plan (`terraform show -json` of the saved plan), and
// keeps from that plan only what an operator needs to see, with sensitive
// values masked.
package planrender

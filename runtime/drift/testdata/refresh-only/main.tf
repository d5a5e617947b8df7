# A drift check's plan: the file botetest_file.motd wrote was changed
# outside Terraform before terraform plan -refresh-only (regen.sh).
terraform {
  required_providers {
    botetest = { source = "example.com/bote/botetest" }
  }
}

resource "botetest_file" "motd" {
  path    = "motd.txt"
  content = "hello"
}

resource "botetest_thing" "same" {
  name = "same"
}

resource "terraform_data" "trigger" {
  input            = "a"
  triggers_replace = ["one", "keep"]
}

resource "terraform_data" "cbd" {
  input            = "a"
  triggers_replace = "one"
  lifecycle {
    create_before_destroy = true
  }
}

resource "terraform_data" "asked" {
  input = "replace me"
}

resource "terraform_data" "source" {
  input = "v1"
}

resource "terraform_data" "follower" {
  input = "follows source"
  lifecycle {
    replace_triggered_by = [terraform_data.source]
  }
}

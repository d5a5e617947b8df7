terraform {
  required_providers {
    botetest = { source = "example.com/bote/botetest" }
  }
}

resource "botetest_thing" "a" {
  name = "a"
}

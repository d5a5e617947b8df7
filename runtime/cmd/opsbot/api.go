package main

import "errors"

// runsAPI returns the run commands' view of the ops API.
func (a *app) runsAPI() (runsAPI, error) {
	if a.api != nil {
		return a.api, nil
	}
	return nil, errors.New("this opsbot build has no client for the runs API")
}

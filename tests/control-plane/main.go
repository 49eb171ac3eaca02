// Command control-plane runs a real Kubernetes control plane for the tests: etcd (embedded in this
// process) and kube-apiserver (this same binary re-executed as a child bound to our life), both on
// 127.0.0.1. See README.md for the contract other tools rely on.
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == apiserverMode {
		// The child: the real kube-apiserver command with the arguments the launcher chose.
		cmd := app.NewAPIServerCommand()
		cmd.SetArgs(os.Args[2:])
		os.Exit(cli.Run(cmd))
	}
	if err := launch(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "control-plane: %v\n", err)
		os.Exit(1)
	}
}

package kubectlplugin

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
)

// DefaultDriver is the driver name sriov-dra publishes under.
const DefaultDriver = "sriov.dra.dev"

// options are the flags every command shares.
type options struct {
	config *genericclioptions.ConfigFlags
	driver string
	output string
	io     genericiooptions.IOStreams
}

// NewCommand is `kubectl sriov-dra` with its subcommands.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{config: genericclioptions.NewConfigFlags(true), io: streams}
	root := &cobra.Command{
		Use:           "sriov-dra",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl sriov-dra"},
		Short:         "Free SR-IOV devices per node and class, a node's devices and their holders, and why a pod's claims are not allocated",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.config.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVar(&o.driver, "driver", DefaultDriver, "the DRA driver name whose devices are shown")
	root.PersistentFlags().StringVarP(&o.output, "output", "o", OutputTable, "output format: table, wide or json")

	var capOpts CapacityOptions
	capacity := &cobra.Command{
		Use:   "capacity [--node N] [--class C]",
		Short: "Devices total, allocated, free and tainted per node, per DeviceClass and per classic resource name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := o.model(cmd.Context())
			if err != nil {
				return err
			}
			rows, warnings, err := m.Capacity(cmd.Context(), capOpts)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintln(o.io.ErrOut, "warning:", w)
			}
			return WriteCapacity(o.io.Out, o.output, rows)
		},
	}
	capacity.Flags().StringVar(&capOpts.Node, "node", "", "only this node")
	capacity.Flags().StringVar(&capOpts.Class, "class", "", "only this DeviceClass")

	node := &cobra.Command{
		Use:   "node NODE",
		Short: "A node's devices under their PFs, with driver, NUMA node, health and the claim and pod holding each",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := o.model(cmd.Context())
			if err != nil {
				return err
			}
			groups, err := m.Node(args[0])
			if err != nil {
				return err
			}
			return WriteNode(o.io.Out, o.output, args[0], groups)
		},
	}

	why := &cobra.Command{
		Use:   "why POD",
		Short: "For each claim and request of the pod, what stands in the way of an allocation on each node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.why(cmd.Context(), o.io.Out, args[0])
		},
	}
	root.AddCommand(capacity, node, why)
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return checkOutput(o.output) }
	return root
}

func (o *options) client() (kubernetes.Interface, error) {
	cfg, err := o.config.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}

func (o *options) model(ctx context.Context) (*Model, error) {
	c, err := o.client()
	if err != nil {
		return nil, err
	}
	s, err := read(ctx, c, o.driver)
	if err != nil {
		return nil, err
	}
	return NewModel(s), nil
}

// read lists the driver's slices, every namespace's claims (any of them may
// hold a node's devices) and every class.
func read(ctx context.Context, c kubernetes.Interface, driver string) (Snapshot, error) {
	s := Snapshot{Driver: driver}
	slices, err := c.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{FieldSelector: "spec.driver=" + driver})
	if err != nil {
		return s, fmt.Errorf("list ResourceSlices of driver %s: %w", driver, err)
	}
	s.Slices = slices.Items
	claims, err := c.ResourceV1().ResourceClaims(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, fmt.Errorf("list ResourceClaims: %w", err)
	}
	s.Claims = claims.Items
	classes, err := c.ResourceV1().DeviceClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, fmt.Errorf("list DeviceClasses: %w", err)
	}
	s.Classes = classes.Items
	return s, nil
}

func (o *options) why(ctx context.Context, w io.Writer, podName string) error {
	ns, _, err := o.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	pod, err := c.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", ns, podName, err)
	}
	if len(pod.Spec.ResourceClaims) == 0 {
		return fmt.Errorf("pod %s/%s has no resource claims", ns, podName)
	}
	s, err := read(ctx, c, o.driver)
	if err != nil {
		return err
	}
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list Nodes: %w", err)
	}
	s.Nodes = nodes.Items
	return WriteWhy(w, o.output, NewModel(s).Why(ctx, pod))
}

"""Protobuf field numbers of the Kubernetes messages kstate serves: facts of the published
API, in one table beside the attrs schema (``objects.py``, ``meta.py``).

Where it sits: ``protobuf.py`` reads this table together with the codec's plan of each
attrs class to build the protobuf messages; the JSON codec and OpenAPI never need it.
The numbers are those of ``k8s.io/api`` (``core/v1``, ``coordination/v1``,
``autoscaling/v1``, ``policy/v1`` ``generated.proto``) and ``k8s.io/apimachinery``
(``meta/v1``, ``runtime``, ``api/resource``, ``util/intstr``).

Each entry is ``"jsonName=number[:type] ..."`` for one message:

* a field the attrs class models gets its type from the schema (``str`` -> string,
  ``Int32`` -> int32, ``int`` -> int64, an RFC 3339 string -> ``Time``, ``Quantity``,
  ``int | str`` -> ``IntOrString``, a nested class -> its message); a ``:type`` is given
  only where the schema cannot tell (``MicroTime``);
* a field kstate keeps unmodelled (in the object's ``extra``) states its type:
  ``string``, ``bool``, ``int32``, ``int64``, ``bytes``, ``Time``, a message of this
  table, ``[T]`` for repeated, ``{T}`` for ``map<string, T>``; ``-`` is a message kstate
  has no schema for: accepted only empty on input, and an object holding one is served
  as JSON instead (see ``docs/apiserver.md``);
* ``:<Message>`` embeds a message whose fields are the enclosing class's own JSON keys
  (Go's inlined ``ProbeHandler`` inside ``Probe``);
* number ``0``: a modelled attribute that is not part of the message (the TypeMeta of
  ``DeleteOptions`` travels in the envelope).
"""

from __future__ import annotations

#: Every ``<Kind>List``: ``metadata`` (ListMeta) and ``items`` (the kind's message).
LIST_FIELDS = "metadata=1:ListMeta items=2:[{kind}]"

FIELD_NUMBERS: dict[str, str] = {
    # -- the wire envelope (k8s.io/apimachinery pkg/runtime, meta/v1 WatchEvent)
    "TypeMeta": "apiVersion=1:string kind=2:string",
    "Unknown": "typeMeta=1:TypeMeta raw=2:bytes contentEncoding=3:string "
        "contentType=4:string",
    "RawExtension": "raw=1:bytes",
    "WatchEvent": "type=1:string object=2:RawExtension",
    # -- shared value types (meta/v1 Time, MicroTime; resource.Quantity; intstr)
    "Time": "seconds=1:int64 nanos=2:int32",
    "MicroTime": "seconds=1:int64 nanos=2:int32",
    "Quantity": "string=1:string",
    "IntOrString": "type=1:int64 intVal=2:int32 strVal=3:string",
    # -- the kinds and their parts
    "Pod": "metadata=1 spec=2 status=3",
    "ObjectMeta": "name=1 generateName=2 namespace=3 selfLink=4:string uid=5 "
        "resourceVersion=6 generation=7 creationTimestamp=8 deletionTimestamp=9 "
        "deletionGracePeriodSeconds=10 labels=11 annotations=12 ownerReferences=13 "
        "finalizers=14 managedFields=17:-",
    "OwnerReference": "kind=1 name=3 uid=4 apiVersion=5 controller=6 blockOwnerDeletion=7",
    "PodSpec": "volumes=1:- containers=2 restartPolicy=3 terminationGracePeriodSeconds=4 "
        "activeDeadlineSeconds=5 dnsPolicy=6:string nodeSelector=7 "
        "serviceAccountName=8:string serviceAccount=9:string nodeName=10 hostNetwork=11 "
        "hostPID=12:bool hostIPC=13:bool securityContext=14:- imagePullSecrets=15:- "
        "hostname=16:string subdomain=17:string affinity=18 schedulerName=19 "
        "initContainers=20:- automountServiceAccountToken=21:bool tolerations=22 "
        "hostAliases=23:- priorityClassName=24:string priority=25 dnsConfig=26:- "
        "shareProcessNamespace=27:bool readinessGates=28:- runtimeClassName=29:string "
        "enableServiceLinks=30:bool preemptionPolicy=31:string overhead=32:{Quantity} "
        "topologySpreadConstraints=33:- ephemeralContainers=34:- setHostnameAsFQDN=35:bool "
        "os=36:- hostUsers=37:bool schedulingGates=38:- resourceClaims=39:- resources=40:- "
        "hostnameOverride=41:string schedulingGroup=43:- evictionResponders=44:-",
    "Container": "name=1 image=2 command=3 args=4 workingDir=5 ports=6 env=7 resources=8 "
        "volumeMounts=9:- livenessProbe=10 readinessProbe=11 lifecycle=12:- "
        "terminationMessagePath=13:string imagePullPolicy=14 securityContext=15:- "
        "stdin=16 stdinOnce=17 tty=18 envFrom=19:- "
        "terminationMessagePolicy=20:string volumeDevices=21:- startupProbe=22 "
        "resizePolicy=23:- restartPolicy=24:string restartPolicyRules=25:-",
    "ContainerPort": "name=1 hostPort=2 containerPort=3 protocol=4 hostIP=5",
    "EnvVar": "name=1 value=2 valueFrom=3:-",
    "ResourceRequirements": "limits=1 requests=2 claims=3:-",
    "Probe": "handler=1:<ProbeHandler> initialDelaySeconds=2 timeoutSeconds=3 "
        "periodSeconds=4 successThreshold=5 failureThreshold=6 "
        "terminationGracePeriodSeconds=7",
    "ExecAction": "command=1",
    "HTTPGetAction": "path=1 port=2 host=3 scheme=4 httpHeaders=5 protocol=6:string",
    "HTTPHeader": "name=1 value=2",
    "TCPSocketAction": "port=1 host=2",
    "Affinity": "nodeAffinity=1 podAffinity=2:- podAntiAffinity=3:-",
    "NodeAffinity": "requiredDuringSchedulingIgnoredDuringExecution=1 "
        "preferredDuringSchedulingIgnoredDuringExecution=2:-",
    "NodeSelector": "nodeSelectorTerms=1",
    "NodeSelectorTerm": "matchExpressions=1 matchFields=2",
    "NodeSelectorRequirement": "key=1 operator=2 values=3",
    "Toleration": "key=1 operator=2 value=3 effect=4 tolerationSeconds=5",
    "PodStatus": "phase=1 conditions=2 message=3 reason=4 hostIP=5 podIP=6 startTime=7 "
        "containerStatuses=8 qosClass=9 initContainerStatuses=10:- "
        "nominatedNodeName=11:string podIPs=12 ephemeralContainerStatuses=13:- "
        "resize=14:string resourceClaimStatuses=15:- hostIPs=16:[HostIP] "
        "observedGeneration=17:int64 extendedResourceClaimStatus=18:- "
        "allocatedResources=19:{Quantity} resources=20:- "
        "nodeAllocatableResourceClaimStatuses=21:- volumeHealth=22:-",
    "PodCondition": "type=1 status=2 lastProbeTime=3 lastTransitionTime=4 reason=5 "
        "message=6 observedGeneration=7:int64",
    "PodIP": "ip=1",
    "ContainerStatus": "name=1 state=2 lastState=3 ready=4 restartCount=5 image=6 imageID=7 "
        "containerID=8 started=9 allocatedResources=10:{Quantity} resources=11:- "
        "volumeMounts=12:- user=13:- allocatedResourcesStatus=14:- stopSignal=15:string",
    "ContainerState": "waiting=1 running=2 terminated=3",
    "ContainerStateWaiting": "reason=1 message=2",
    "ContainerStateRunning": "startedAt=1",
    "ContainerStateTerminated": "exitCode=1 signal=2 reason=3 message=4 startedAt=5 "
        "finishedAt=6 containerID=7",
    "ReplicationController": "metadata=1 spec=2 status=3",
    "ReplicationControllerSpec": "replicas=1 selector=2 template=3 minReadySeconds=4",
    "PodTemplateSpec": "metadata=1 spec=2",
    "ReplicationControllerStatus": "replicas=1 fullyLabeledReplicas=2 observedGeneration=3 "
        "readyReplicas=4 availableReplicas=5 conditions=6",
    "ReplicationControllerCondition": "type=1 status=2 lastTransitionTime=3 reason=4 "
        "message=5",
    "Service": "metadata=1 spec=2 status=3",
    "ServiceSpec": "ports=1 selector=2 clusterIP=3 type=4 externalIPs=5:[string] "
        "sessionAffinity=7 loadBalancerIP=8:string loadBalancerSourceRanges=9:[string] "
        "externalName=10:string externalTrafficPolicy=11 healthCheckNodePort=12:int32 "
        "publishNotReadyAddresses=13 sessionAffinityConfig=14 ipFamilyPolicy=17:string "
        "clusterIPs=18 ipFamilies=19:[string] allocateLoadBalancerNodePorts=20:bool "
        "loadBalancerClass=21:string internalTrafficPolicy=22:string "
        "trafficDistribution=23:string",
    "ServicePort": "name=1 protocol=2 port=3 targetPort=4 nodePort=5 appProtocol=6",
    "SessionAffinityConfig": "clientIP=1",
    "ClientIPConfig": "timeoutSeconds=1",
    "ServiceStatus": "loadBalancer=1:- conditions=2:-",
    "Endpoints": "metadata=1 subsets=2",
    "EndpointSubset": "addresses=1 notReadyAddresses=2 ports=3",
    "EndpointAddress": "ip=1 targetRef=2 hostname=3 nodeName=4",
    "ObjectReference": "kind=1 namespace=2 name=3 uid=4 apiVersion=5 resourceVersion=6 "
        "fieldPath=7",
    "EndpointPort": "name=1 port=2 protocol=3 appProtocol=4",
    "Node": "metadata=1 spec=2 status=3",
    "NodeSpec": "podCIDR=1 externalID=2:string providerID=3 unschedulable=4 taints=5 "
        "configSource=6:- podCIDRs=7:[string] podPreemptionPolicy=8:-",
    "Taint": "key=1 value=2 effect=3 timeAdded=4",
    "NodeStatus": "capacity=1 allocatable=2 phase=3:string conditions=4 addresses=5 "
        "daemonEndpoints=6:- nodeInfo=7 images=8:- volumesInUse=9:[string] "
        "volumesAttached=10:- config=11:- runtimeHandlers=12:- features=13:- "
        "declaredFeatures=14:[string]",
    "NodeCondition": "type=1 status=2 lastHeartbeatTime=3 lastTransitionTime=4 reason=5 "
        "message=6",
    "NodeAddress": "type=1 address=2",
    "NodeSystemInfo": "machineID=1:string systemUUID=2:string bootID=3:string "
        "kernelVersion=4:string osImage=5:string containerRuntimeVersion=6 kubeletVersion=7 "
        "kubeProxyVersion=8:string operatingSystem=9 architecture=10 swap=11:-",
    "Namespace": "metadata=1 spec=2 status=3",
    "NamespaceSpec": "finalizers=1",
    "NamespaceStatus": "phase=1 conditions=2",
    "Event": "metadata=1 involvedObject=2 reason=3 message=4 source=5 firstTimestamp=6 "
        "lastTimestamp=7 count=8 type=9 eventTime=10:MicroTime series=11:- action=12 "
        "related=13:- reportingComponent=14 reportingInstance=15",
    "EventSource": "component=1 host=2",
    "Lease": "metadata=1 spec=2",
    "LeaseSpec": "holderIdentity=1 leaseDurationSeconds=2 acquireTime=3:MicroTime "
        "renewTime=4:MicroTime leaseTransitions=5 strategy=6:string "
        "preferredHolder=7:string",
    "Binding": "metadata=1 target=2",
    "Scale": "metadata=1 spec=2 status=3",
    "ScaleSpec": "replicas=1",
    "ScaleStatus": "replicas=1 selector=2",
    "Eviction": "metadata=1 deleteOptions=2",
    "DeleteOptions": "gracePeriodSeconds=1 preconditions=2 orphanDependents=3 "
        "propagationPolicy=4 dryRun=5 "
        "ignoreStoreReadErrorWithClusterBreakingPotential=6:bool kind=0 apiVersion=0",
    "Preconditions": "uid=1 resourceVersion=2",
    "Status": "metadata=1 status=2 message=3 reason=4 details=5 code=6",
    "ListMeta": "selfLink=1:string resourceVersion=2 continue=3 remainingItemCount=4 "
        "shardInfo=5:-",
    "StatusDetails": "name=1 group=2 kind=3 causes=4 retryAfterSeconds=5 uid=6",
    "StatusCause": "reason=1 message=2 field=3",
    "List": "metadata=1 items=2",
    "HostIP": "ip=1:string",
    "NamespaceCondition": "type=1 status=2 lastTransitionTime=4 reason=5 message=6",
    "ProbeHandler": "exec=1 httpGet=2 tcpSocket=3 grpc=4:-",
}

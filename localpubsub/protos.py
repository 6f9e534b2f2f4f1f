"""The raw protobuf classes of google.pubsub.v1, as the local Pub/Sub server uses them.

Owns: one name per message class the server reads or writes. google-cloud-pubsub ships them
wrapped in proto-plus classes and ships no servicer base classes; the raw classes behind the
wrappers (`Wrapper.pb()`) serialize in C, where the wrappers convert every field in Python
(37% of a decoder's CPU on the client side, bench/RESULTS.md), so the server uses the raw
ones throughout.

Never: hold logic; it only names classes.
"""

from __future__ import annotations

from google.protobuf import empty_pb2
from google.pubsub_v1 import types

Empty = empty_pb2.Empty
Topic = types.Topic.pb()
Subscription = types.Subscription.pb()
PubsubMessage = types.PubsubMessage.pb()
PublishRequest = types.PublishRequest.pb()
PublishResponse = types.PublishResponse.pb()
GetTopicRequest = types.GetTopicRequest.pb()
DeleteTopicRequest = types.DeleteTopicRequest.pb()
ListTopicsRequest = types.ListTopicsRequest.pb()
ListTopicsResponse = types.ListTopicsResponse.pb()
ListTopicSubscriptionsRequest = types.ListTopicSubscriptionsRequest.pb()
ListTopicSubscriptionsResponse = types.ListTopicSubscriptionsResponse.pb()
GetSubscriptionRequest = types.GetSubscriptionRequest.pb()
DeleteSubscriptionRequest = types.DeleteSubscriptionRequest.pb()
ListSubscriptionsRequest = types.ListSubscriptionsRequest.pb()
ListSubscriptionsResponse = types.ListSubscriptionsResponse.pb()
PullRequest = types.PullRequest.pb()
PullResponse = types.PullResponse.pb()
AcknowledgeRequest = types.AcknowledgeRequest.pb()
ModifyAckDeadlineRequest = types.ModifyAckDeadlineRequest.pb()
StreamingPullRequest = types.StreamingPullRequest.pb()
StreamingPullResponse = types.StreamingPullResponse.pb()
